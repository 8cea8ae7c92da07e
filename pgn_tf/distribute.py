"""Distribution strategies for training: one device, MirroredStrategy, MultiWorkerMirroredStrategy.

The training loop (`gan.PGNGAN.train_step`) runs once per replica on its
share of the global batch; `distribute_dataset` hands each replica exactly
the rows of the global batch that a single device would have used at the
same place, so a step with R replicas computes what one device computes.
"""

import json
import os

import tensorflow as tf

from pgn_tf import errors

STRATEGIES = ("default", "mirrored", "multi_worker")


StrategyError = errors.StrategyError  # a strategy that cannot be set up (bad TF_CONFIG, too late to split the CPU)


def split_cpu(replicas):
    """Splits the first CPU into `replicas` logical devices (before TensorFlow initialises its devices).

    Lets data parallelism run, and be tested, on a machine without GPUs.
    """
    replicas = int(replicas)
    if replicas < 1:
        raise StrategyError(f"--cpu_replicas must be positive, got {replicas}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != replicas:
            raise StrategyError(
                f"cannot split the CPU into {replicas} devices: TensorFlow already started with {have}."
            ) from None


def tf_config():
    """The cluster in $TF_CONFIG, checked: {"cluster": {job: [host:port, ...]}, "task": {"type", "index"}}.

    Raises:
      StrategyError: unset, not JSON, or a task that is not in the cluster.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise StrategyError(
            'TF_CONFIG is not set; multi_worker needs it on every host, e.g. {"cluster": {"worker": '
            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}.'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}).") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise StrategyError('TF_CONFIG needs a "cluster" of jobs and this process\'s "task" ({"type", "index"}).')
    for job, hosts in cluster.items():
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise StrategyError(f'TF_CONFIG cluster job "{job}" must be a list of "host:port" strings, got {hosts!r}.')
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise StrategyError(f"TF_CONFIG task type {kind!r} is not a job of the cluster {sorted(cluster)}.")
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise StrategyError(f"TF_CONFIG task index {index!r} is not in 0..{len(cluster[kind]) - 1} for job {kind!r}.")
    return config


def make_strategy(name="default", cpu_replicas=None):
    """A tf.distribute strategy by name.

    default: the current (one-device) strategy; mirrored: MirroredStrategy
    over all GPUs, or over the logical CPUs when there is no GPU (see
    cpu_replicas); multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG
    (all GPUs of each host, else its CPU).

    Args:
      cpu_replicas: split the CPU into this many logical devices first.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; expected one of {STRATEGIES}.")
    if name == "multi_worker":
        tf_config()
    if cpu_replicas is not None:
        split_cpu(cpu_replicas)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
    """True where summaries, samples, evaluations and the kept checkpoints are written."""
    return strategy.extended.should_checkpoint


def worker_id(strategy):
    """This host's task index in a multi-worker cluster (0 otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None and resolver.task_type else 0


def split_rows(t, n_dis, replicas):
    """[n_dis * batch, ...] -> [replicas, n_dis * batch / replicas, ...]: row r holds rows r of every slice.

    Slice k (critic step k) is rows [k * batch, (k + 1) * batch); replica r
    gets rows [r * b, (r + 1) * b) of each, b = batch / replicas, in order.
    """
    rest = t.shape[1:].as_list()
    t = tf.reshape(t, [n_dis, replicas, -1] + rest)
    t = tf.transpose(t, [1, 0] + list(range(2, len(t.shape))))
    return tf.reshape(t, [replicas, -1] + rest)


def distribute_dataset(strategy, dataset_fn, n_dis, batch_size):
    """The global batches of `dataset_fn`, split so replica r gets rows r of every critic step's batch.

    A global batch holds n_dis slices of batch_size images; a single device
    uses slice k for critic step k. Replica r of R gets, for every k, rows
    [r * b, (r + 1) * b) of slice k (b = batch_size / R), so the replicas
    together see exactly the single device's batches. Every input pipeline
    (one per host) builds the same seeded global stream and keeps its own
    replicas' shares.

    Args:
      dataset_fn: () -> tf.data of global (images, labels) batches of n_dis * batch_size.
    """
    replicas = strategy.num_replicas_in_sync

    def split(images, labels):
        return split_rows(images, n_dis, replicas), split_rows(labels, n_dis, replicas)

    def pipeline(context):
        per_pipeline = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * per_pipeline
        ds = dataset_fn().map(split).unbatch().enumerate()
        ds = ds.filter(lambda i, _: (i % replicas >= first) & (i % replicas < first + per_pipeline))
        return ds.map(lambda _, x: x).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(pipeline)
