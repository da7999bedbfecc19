"""Taking a vector out of steerlab: steering folded into a plain checkpoint, rank-1 LoRA
ablation adapters (for multi-LoRA servers). GGUF control vectors, being a vector file
format, live in :mod:`steerlab.gguf_vectors` below the vector type.

Modules: :mod:`~steerlab.export.fold` (:func:`steerlab.fold`: the folded copy of a model),
:mod:`~steerlab.export.checkpoint` (saving it, checked to reload as folded),
:mod:`~steerlab.export.adapter` (:func:`steerlab.fold_adapter`), and
:mod:`~steerlab.export.residual` (the residual writers and the projection maths)."""
