# Copyright (c) mmprompt contributors. All rights reserved.
"""The model tests import ``coop_reference`` (this folder), the independent
computations they compare mmprompt's models with: pytest puts a conftest's
folder on ``sys.path``."""
