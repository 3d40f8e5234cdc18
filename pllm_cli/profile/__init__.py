"""The user's profile: facts with provenance extracted from memory, merged, versioned and put into prompts."""
