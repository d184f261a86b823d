"""Stage 3, the model: encoders, heads, the CRF and the losses as torch modules and functions,
the ``TaskModel`` that joins an encoder to a task's heads (``network``), and the model
directory it is saved in and loaded from (``artifact``)."""
