"""End-to-end pipelines: prompts and first frames in, videos and x̂0 trajectories out.

- `toy`: the shipped toy world (pixel codec, byte tokenizer).
- `wan`: Wan2.2 T2V-A14B / I2V-A14B / TI2V-5B over `components.Components` (`load_components(path)`),
  with `images` (first-frame checks and resize rules) and `wan_cli` (`cos-jax sample --model DIR`).
- `wan_reference`: tiny random diffusers pipelines and diffusers runs for parity (needs the test extra).
"""
