"""The Textual dashboard: live training (`lgcn-tui train`) and attaching to a headless run (`lgcn-tui watch`)."""
