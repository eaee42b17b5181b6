"""Result-card images: drawing, fonts."""
