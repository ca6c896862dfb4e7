# Copyright (c) mmprompt contributors. All rights reserved.
"""Run one of mmpretrain's tools unchanged and record what it drew.

``python spy_tool.py RECORD.json TOOL.py [tool arguments]`` runs ``TOOL.py``
as ``__main__`` (as ``python TOOL.py ...`` would) after wrapping two
mmpretrain functions, whose results the tests cannot read back from the
images the tools write:

- ``UniversalVisualizer.visualize_cls``: the class names it labels an
  image with (its ``classes`` argument, else its ``dataset_meta``);
- ``ConfusionMatrix.plot``: the class names of the plot's axes.

The wrappers call the original functions; the record is written when the
tool ends, also when it fails.
"""
import atexit
import json
import runpy
import sys


def main() -> None:
    record_path, tool, *args = sys.argv[1:]
    from mmpretrain.evaluation import ConfusionMatrix
    from mmpretrain.visualization import UniversalVisualizer

    record = {'visualize_cls': [], 'confusion_matrix_plot': []}

    def _names(classes):
        return None if classes is None else [str(c) for c in classes]

    visualize_cls = UniversalVisualizer.visualize_cls

    def spy_visualize_cls(self, image, data_sample, classes=None, **kwargs):
        names = classes if classes is not None else (self.dataset_meta
                                                     or {}).get('classes')
        record['visualize_cls'].append(_names(names))
        return visualize_cls(self, image, data_sample, classes, **kwargs)

    plot = ConfusionMatrix.plot

    def spy_plot(confusion_matrix, *plot_args, classes=None, **kwargs):
        record['confusion_matrix_plot'].append(_names(classes))
        return plot(confusion_matrix, *plot_args, classes=classes, **kwargs)

    UniversalVisualizer.visualize_cls = spy_visualize_cls
    ConfusionMatrix.plot = staticmethod(spy_plot)

    def write():
        with open(record_path, 'w') as f:
            json.dump(record, f)

    atexit.register(write)
    sys.argv = [tool, *args]
    runpy.run_path(tool, run_name='__main__')


if __name__ == '__main__':
    main()
