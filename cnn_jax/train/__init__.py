"""Training: state, optimisers and schedules, jitted steps, checkpoints, the loop.

Nothing here names a model: the loop gets a registry name from the config and treats the
module as `apply(variables, images, train, mutable) -> logits`.
"""
