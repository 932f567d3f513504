"""Prompt formats (the model's chat template, or a plain transcript) and the long-prompt policy.

See :mod:`appliance.llm.prompts.render`.
"""
