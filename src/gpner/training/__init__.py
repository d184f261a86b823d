"""Stage 4, training: settings (``config``), records -> windowed examples and batches
(``examples``), the loop (``trainer``) with its state (``state``), schedule (``optim``),
regularisers, checkpoints, the run directory (``rundir``) and torch.distributed
(``distributed``)."""
