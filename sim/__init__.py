"""Camera simulator: UK plates, renderer, scene and optics, traffic, data sets."""
