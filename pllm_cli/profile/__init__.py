"""The user's profile: summarized from memory, stored as a markdown file the user may edit."""
