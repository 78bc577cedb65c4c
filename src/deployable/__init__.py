"""deployable: which version of this model may we ship, to which hardware, and is it still safe to keep running?"""

from deployable._version import __version__
from deployable.config import Project, load_config
from deployable.core.errors import DeployableError
from deployable.core.records import RunResult
from deployable.pipeline import evaluate, run

__all__ = ["DeployableError", "Project", "RunResult", "__version__", "evaluate", "load_config", "run"]
