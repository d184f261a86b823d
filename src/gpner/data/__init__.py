"""Stage 1, data in: annotation files of every supported format -> records with character
offsets (``formats``; the record itself is :mod:`gpner.records`), tag schemes (``tagging``)
and the generated demo corpus (``demo``). No torch."""
