"""Study storage: URLs, opening storages that ride out outages, creating or joining a study."""
