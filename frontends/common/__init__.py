"""What both web frontends share: sealed session cookies, CSRF, security headers, pages."""
