"""What the ``supernet`` and ``search`` packages share: user errors and their one-line reporting
(:mod:`.errors`, :mod:`.cli`), atomic writes (:mod:`.atomic`), safe YAML (:mod:`.yamlio`), the
machine's resources (:mod:`.resources`), devices (:mod:`.device`) and value checks
(:mod:`.validate`). Nothing here knows about models or searches."""
