"""One APIRouter per resource: search, items, recommend, playlists, meta."""
