"""Offline Vega-Lite embedding shared by every UPS HTML page: the inlined JS bundle and spec JSON safe in a script.

vl-convert's own page embeds a spec verbatim inside ``<script>``, so a user string containing ``</script>`` would end
the script early. Here spec JSON has ``<``, ``>``, ``&`` and the JS line separators escaped (:func:`script_json`), and
Vega, Vega-Lite and vega-embed are inlined from ``vl_convert.javascript_bundle`` (:func:`vega_script`), so a page
opens offline and loads nothing from the network.
"""

from __future__ import annotations

import functools
import json

import altair as alt
import vl_convert

# Vega-Lite version matching the installed Altair (e.g. "v6.4"), used for the inlined JS and for PNG export.
VL_VERSION = alt.SCHEMA_VERSION.rsplit(".", 1)[0]


def script_json(obj: object) -> str:
    """JSON safe to place inside ``<script>``: no ``</script>``, ``<!--`` or line separators can appear in it."""
    text = json.dumps(obj, allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


@functools.lru_cache(maxsize=1)
def vega_script() -> str:
    """``<script>…</script>`` with Vega, Vega-Lite and vega-embed inlined (about 0.9 MB; built once per process)."""
    bundle = vl_convert.javascript_bundle(vl_version=VL_VERSION).replace("</script", "<\\/script")
    return f"<script>{bundle}</script>"


def embed_call(element_id: str, spec: dict) -> str:
    """The JS statement that renders ``spec`` (SVG, no action menu) into the element with id ``element_id``.

    ``element_id`` must be a plain identifier chosen by the caller (letters, digits, ``-``, ``_``), never user text.
    """
    return f'vegaEmbed("#{element_id}", {script_json(spec)}, {{renderer: "svg", actions: false}}).catch(console.error);'
