"""Gin files: the shipped configs' folder, parsing files and bindings with one-line errors, a run's operative config."""

import glob
import logging as std_logging
import os
import re

from absl import logging

from pgn_tf.errors import UsageError, first_line

# Installed with the package; the repository's top-level gin_configs/ is a link to it.
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gin_configs")


def parse_gin(files, params):
    """Parses gin files (paths, or names in gin_configs/) and bindings.

    Raises:
      UsageError: a missing file or a binding gin cannot parse or place.
    """
    import gin

    from pgn_tf import configurables  # noqa: F401  (registers every configurable and the gin root)

    gin.add_config_file_search_path(CONFIG_DIR)
    resolved = []
    for path in files:
        if not os.path.isfile(path):
            if not os.path.isfile(os.path.join(CONFIG_DIR, path)):
                raise UsageError(f"gin file {path} does not exist (the shipped configs are in {CONFIG_DIR}).")
            path = os.path.join(CONFIG_DIR, path)
        resolved.append(path)
    # gin logs every place it looks for an included file (to Python's root logger, which absl's handler takes
    # over under app.run); keep that out of the run's output either way.
    verbosity, root_level = logging.get_verbosity(), std_logging.getLogger().level
    logging.set_verbosity(logging.FATAL)
    std_logging.getLogger().setLevel(std_logging.CRITICAL)
    try:
        gin.parse_config_files_and_bindings(resolved, params)
    except (ValueError, KeyError, SyntaxError, TypeError, OSError) as e:
        raise UsageError(f"bad gin config: {first_line(e)}") from None
    finally:
        logging.set_verbosity(verbosity)
        std_logging.getLogger().setLevel(root_level)


def operative_config(workdir):
    """The run's newest operative config (operative_config.<step>.gin after a resume with other bindings)."""
    numbered = glob.glob(os.path.join(workdir, "operative_config.*.gin"))
    if numbered:
        return max(numbered, key=lambda p: int(re.findall(r"\.(\d+)\.gin$", p)[0]))
    path = os.path.join(workdir, "operative_config.gin")
    if not os.path.isfile(path):
        raise UsageError(f"{workdir} has no operative_config.gin; is it a training workdir (--workdir)?")
    return path
