"""Reading and writing: micrographs and masks in any format, dataset layouts, atomic outputs."""
