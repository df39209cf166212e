"""Training a grasp classifier from labelled image folders."""
