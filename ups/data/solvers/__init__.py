"""Built-in reference solvers, one module per task, registered in :data:`TASKS`; each task subclasses
:class:`~ups.data.solvers.base.Task`."""

from ups.data.solvers.base import Task
from ups.registry import Registry

TASKS: Registry[type[Task]] = Registry("task")

# Register members explicitly so `TASKS` is complete after `import ups.data.solvers`.
from ups.data.solvers import advection1d as advection1d  # noqa: E402
from ups.data.solvers import burgers1d as burgers1d  # noqa: E402
from ups.data.solvers import darcy2d as darcy2d  # noqa: E402
from ups.data.solvers import diffreact2d as diffreact2d  # noqa: E402
from ups.data.solvers import euler1d as euler1d  # noqa: E402
from ups.data.solvers import euler2d as euler2d  # noqa: E402
from ups.data.solvers import ks1d as ks1d  # noqa: E402
from ups.data.solvers import ns2d as ns2d  # noqa: E402
