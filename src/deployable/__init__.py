"""deployable: which version of this model may we ship, to which hardware, and is it still safe to keep running?"""

# the stage packages register their built-in plugins (model sources, data formats, recipes) on import, as timm's
# models do: the config then accepts exactly what is registered
import deployable.data
import deployable.models
import deployable.optimize  # noqa: F401
from deployable._version import __version__
from deployable.config import Project, load_config
from deployable.core.errors import DeployableError
from deployable.core.records import RunResult
from deployable.pipeline import evaluate, run, scan_and_audit

__all__ = ["DeployableError", "Project", "RunResult", "__version__", "evaluate", "load_config", "run", "scan_and_audit"]
