"""What several nodes share through the database (DESIGN.md): node liveness, ..."""
