"""What the agent touches outside its own memory: the storage root and its task records."""
