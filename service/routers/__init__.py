"""One router per HTTP surface; handlers parse, call the inference layer and shape the answer."""
