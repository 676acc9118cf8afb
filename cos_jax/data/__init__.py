"""Datasets of the procedural tasks: a TF-free TFDS builder (array_record) and grain loaders.

Never imports the model stack (``cos_jax.wan``, ``cos_jax.sampling``, ``cos_jax.probes``).
"""
