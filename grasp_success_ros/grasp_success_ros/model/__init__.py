"""The classifier: model cards, building, loading (Keras 2 .h5 too), runtimes, export."""
