"""The sample e-commerce API that OpsGraph looks after in demos and evals."""
