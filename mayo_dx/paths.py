"""Where mayo-dx keeps trained artifacts by default.

``mayo-dx demo`` exports its models into :func:`default_models_dir`, and ``mayo-dx serve``,
``mayo-dx predict`` and ``mayo-dx models`` look there when no folder is given. The folder is
``$MAYO_DX_MODELS`` when set, else ``$XDG_DATA_HOME/mayo-dx/models`` (``~/.local/share`` when
``XDG_DATA_HOME`` is unset). Nothing is downloaded into it: it holds what you trained or copied.

Example:
    >>> import os
    >>> os.environ["MAYO_DX_MODELS"] = "/tmp/mayo-dx-models"
    >>> str(default_models_dir())
    '/tmp/mayo-dx-models'
    >>> del os.environ["MAYO_DX_MODELS"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MODELS_ENVIRONMENT_VARIABLE", "default_models_dir"]

#: Environment variable that overrides the default models folder.
MODELS_ENVIRONMENT_VARIABLE = "MAYO_DX_MODELS"


def default_models_dir() -> Path:
    """Return the default models folder (not created here).

    Example:
        >>> default_models_dir().name in ("models", os.path.basename(os.environ.get("MAYO_DX_MODELS", "")))
        True
    """
    explicit = os.environ.get(MODELS_ENVIRONMENT_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "mayo-dx" / "models"
