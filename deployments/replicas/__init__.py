"""Layer 3, the replicas: one Ray Serve deployment class per modality, the dynamic batcher,
the model thread, metrics, autoscaling policy and request routers."""
