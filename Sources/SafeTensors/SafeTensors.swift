// Placeholder: this module is filled in by a later issue.
