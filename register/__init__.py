"""The population register (C06): citizens, households, deaths; a service of its own."""
