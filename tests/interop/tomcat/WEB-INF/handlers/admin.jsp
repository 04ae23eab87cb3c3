<%@ page contentType="application/json; charset=UTF-8" trimDirectiveWhitespaces="true" session="false" %>
<% String handler = "admin"; %>
<%@ include file="answer.jspf" %>
