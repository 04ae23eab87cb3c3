<%@ page contentType="application/json; charset=UTF-8" trimDirectiveWhitespaces="true" session="false" %>
<% String handler = "other"; %>
<%@ include file="answer.jspf" %>
