"""What the engine touches outside its memory: the database and the hosts' agents."""
