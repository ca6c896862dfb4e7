# Copyright (c) mmprompt contributors. All rights reserved.
__version__ = '0.1.0'


def parse_version_info(version_str: str) -> tuple:
    """Parse a version string into a tuple of ints (pre-releases dropped).

    Args:
        version_str (str): A version such as ``'0.10.7'`` or ``'2.2.0rc1'``.

    Returns:
        tuple: The numeric parts, e.g. ``(0, 10, 7)``.

    Examples:
        >>> parse_version_info('2.2.0rc1')
        (2, 2, 0)
    """
    parts = []
    for piece in version_str.split('+')[0].split('.'):
        digits = ''
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


version_info = parse_version_info(__version__)
