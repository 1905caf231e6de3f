"""The moodstream web dashboard: Flask-SocketIO app, REST API, accounts and pages.

Importing this package is cheap; Flask is imported by dashboard.app when an app is built.
"""
