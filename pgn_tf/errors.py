"""The errors a user can cause, in one place: each is reported as one `error:` line with exit code 2."""


class UserError(ValueError):
    """Bad input from the user (a setting, a file, a dataset); the message says what to change."""


class UsageError(UserError):
    """A bad command line: a flag, a gin file or binding gin cannot parse."""


class ConfigError(UserError):
    """A configuration a run cannot start with."""


class CheckpointError(UserError):
    """A checkpoint in the workdir that cannot be restored."""


class DataError(UserError):
    """A dataset that cannot be loaded."""


class InceptionError(UserError):
    """The Inception model for IS / FID cannot be loaded."""


class StatsError(UserError):
    """Reference statistics that cannot be read or do not fit the feature network."""


class StrategyError(UserError):
    """A distribution strategy that cannot be made (TF_CONFIG, --cpu_replicas)."""


def first_line(e):
    """The first non-empty line of an exception's message (gin and TF append context on later lines)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
