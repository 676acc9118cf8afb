"""End-to-end pipelines: prompts and first frames in, videos and x̂0 trajectories out."""
