"""The fused ops. Each lives in ops/<op>.py: input checks, backend dispatch, torch.library registration."""
