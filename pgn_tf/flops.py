"""FLOPs that one call of a traced TensorFlow function runs, from TF's registered op costs."""

# TF has no public per-graph FLOP count: its op cost registry and the lookup are reached through tensorflow.python.
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.profiler.internal import flops_registry  # noqa: F401  (registers the costs)

# Op types that call other functions: the ops inside them are not counted by graph_flops.
CALLS = {"PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf", "Case"}


def graph_flops(graph):
    """FLOPs that one call of a traced function runs, and whether the count is partial.

    Counts TF's registered cost (convolutions, matmuls, element-wise arithmetic; a
    multiply-add is 2 FLOPs) of every op that an output or a state change (a stateful
    op: variable updates, random numbers) depends on. That is what grappler keeps and
    the executor runs: the tape also builds ops nobody uses, such as the weight
    gradients of the frozen critic in the generator step, and those are pruned. On
    dcgan.32 PGN the ops counted are the ops TF's profiler sees run, type by type.

    Args:
      graph: a traced function's graph (`tf.function(f).get_concrete_function(...).graph`).

    Returns:
      (FLOPs as an int, True when the graph calls nested functions, whose ops are not counted).
    """
    pending = [t.op for t in graph.outputs] + [op for op in graph.get_operations() if op.op_def.is_stateful]
    live = set()
    while pending:
        op = pending.pop()
        if op not in live:
            live.add(op)
            pending.extend(t.op for t in op.inputs)
            pending.extend(op.control_inputs)
    flops = sum(tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0 for op in live)
    return flops, any(op.type in CALLS for op in live)
