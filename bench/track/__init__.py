"""What a grid leaves behind and how it is read: the MLflow records (`tracking`, `orphans`), and
the report built from them (`report`, `comparison`, `regime`, `figures`, and the paper's
published numbers in `paper`)."""
