"""Where numba may keep the compiled superlet kernels: a per-user cache directory, never the installed package.

numba's default places its cache beside the source file (``__pycache__`` inside site-packages). Such a folder
outlives ``pip uninstall`` and, once the package is reinstalled elsewhere (``pip install -e``), Python imports the
leftover ``bids_brainbert`` folder as a namespace package and every command fails. So the cache goes to
``NUMBA_CACHE_DIR`` when set, else to ``<user cache dir>/bids-brainbert/numba`` (platformdirs: ``XDG_CACHE_HOME``
or ``~/.cache`` on Linux); where neither can be written (a read-only image), the kernels compile in memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numba
import numba.core.config
import platformdirs

APP_NAME = "bids-brainbert"


def cache_directory() -> Path:
    """NUMBA_CACHE_DIR if the user set it, else our folder in the per-user cache directory."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "numba"


def writable_cache_directory() -> Path | None:
    """The cache directory, created if needed, or None where it cannot be created or written."""
    directory = cache_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):   # access() is not enough: read-only mounts, ACLs
            pass
    except OSError:
        return None
    return directory


@contextlib.contextmanager
def _only_user_provided_locator(directory: Path):
    """numba reads its cache settings when a function is decorated: point them at ``directory`` for that moment,
    with no fallback to the in-tree ``__pycache__`` (the installed package), then restore them for other users of
    numba in this process."""
    config = numba.core.config
    saved = config.CACHE_DIR, getattr(config, "CACHE_LOCATOR_CLASSES", "")
    config.CACHE_DIR, config.CACHE_LOCATOR_CLASSES = str(directory), "UserProvidedCacheLocator"
    try:
        yield
    finally:
        config.CACHE_DIR, config.CACHE_LOCATOR_CLASSES = saved


def compiled(func, **options):
    """``numba.njit(**options)`` with the machine code cached on disk in :func:`cache_directory` (fresh processes
    then start at once), in memory only where no cache directory can be written. A user's own
    ``NUMBA_CACHE_LOCATOR_CLASSES`` is respected as given."""
    if getattr(numba.core.config, "CACHE_LOCATOR_CLASSES", ""):
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(func)
    directory = writable_cache_directory()
    if directory is None:
        return numba.njit(cache=False, **options)(func)
    with _only_user_provided_locator(directory):
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # the directory became unwritable in between
            pass
    return numba.njit(cache=False, **options)(func)
