"""Motion Control services: pose, retarget, render, gateway."""
