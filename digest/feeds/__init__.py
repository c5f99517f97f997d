"""The feeds: Atom and RSS for the whole newsletter and each section, with their index page.

Takes the published issues; hands on feed files written to ``[paths] feeds``,
with each entry's ``updated`` kept in the state so unchanged builds write nothing.
"""
