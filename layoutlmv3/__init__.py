"""LayoutLMv3 for document layout: the model, weight loading and OCR-page tokenization."""
