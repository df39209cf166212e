"""The benchmark harness behind ``grasp-success bench``: what is measured (forward passes,
the seed's ``model.predict``, exports, the live node over DDS) and the typed results."""
