# Copyright (c) mmprompt contributors. All rights reserved.
"""Session set-up shared by the tests and the docstring examples."""


def pytest_configure(config):
    # Create mmengine's current logger before any test or doctest runs: a
    # logger first created inside a doctest would bind its handler to the
    # doctest's captured stdout and turn log lines into "unexpected output".
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmprompt-tests')
