"""Flex-template entry point. The launcher (FLEX_TEMPLATE_PYTHON_PY_FILE in the Dockerfile) runs
`python main.py --<template parameter>=... --project=... --region=... --temp_location=... ...`;
pipeline.submit.template_main builds the same graph as `curate submit` and submits it."""

import sys

from pipeline.submit import template_main

if __name__ == "__main__":
    sys.exit(template_main(sys.argv[1:]))
