"""Many instructions at once: batch requests (``batch``) and ERP payment files (``pain001`` in, ``pain002`` out,
``files``: the file desk, its status reports and inbox folders)."""
