"""Sample kit: a procedurally drawn performer video and character, with ground truth."""
