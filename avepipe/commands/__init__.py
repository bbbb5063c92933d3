"""One module per ``avepipe`` sub-command."""
