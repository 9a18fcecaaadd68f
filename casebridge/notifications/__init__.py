"""In-app notifications: the case events that are e-mailed, also kept per person with read state."""
