"""Provider implementations; each module is imported only when its type is configured."""
